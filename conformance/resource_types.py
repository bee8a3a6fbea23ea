"""The resource types Loopgate serves, the interactions each allows and the profiles it enforces.

This table drives both the FHIR routes and the CapabilityStatement, so what is advertised is
what is implemented. The referral's own types come first, with their Gravity profiles
(reference/gravity.md §5.2); every other R4 type the R4B models can check is stored as well.
"""

from dataclasses import dataclass

SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"

TASK_FOR_REFERRAL = f"{SDOHCC}SDOHCC-TaskForReferralManagement"
TASK_FOR_PATIENT = f"{SDOHCC}SDOHCC-TaskForPatient"
SDOHCC_SERVICE_REQUEST = f"{SDOHCC}SDOHCC-ServiceRequest"
SDOHCC_PROCEDURE = f"{SDOHCC}SDOHCC-Procedure"
SDOHCC_CONSENT = f"{SDOHCC}SDOHCC-Consent"
BACKPORT_SUBSCRIPTION = (
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"
)

READ_INTERACTIONS = ("read", "vread", "search-type", "history-instance", "history-type")
WRITE_INTERACTIONS = ("create", "update", "delete")


@dataclass(frozen=True)
class ResourceTypeSpec:
    name: str
    enforced_profiles: tuple[str, ...] = ()
    """Profiles whose rules every write of this type must pass (``conformance.profiles``)."""
    supported_profiles: tuple[str, ...] = ()
    """Profiles advertised as supported; enforced ones are always included."""
    writable: bool = True
    """False for records only Loopgate writes (Provenance, AuditEvent)."""

    @property
    def interactions(self) -> tuple[str, ...]:
        return READ_INTERACTIONS + (WRITE_INTERACTIONS if self.writable else ())

    @property
    def profiles(self) -> tuple[str, ...]:
        return self.enforced_profiles + tuple(
            p for p in self.supported_profiles if p not in self.enforced_profiles
        )


RESOURCE_TYPES: dict[str, ResourceTypeSpec] = {
    spec.name: spec
    for spec in (
        ResourceTypeSpec("Task", enforced_profiles=(TASK_FOR_REFERRAL,)),
        ResourceTypeSpec("ServiceRequest", enforced_profiles=(SDOHCC_SERVICE_REQUEST,)),
        ResourceTypeSpec("Procedure", enforced_profiles=(SDOHCC_PROCEDURE,)),
        ResourceTypeSpec("Consent", enforced_profiles=(SDOHCC_CONSENT,)),
        ResourceTypeSpec("Subscription", enforced_profiles=(BACKPORT_SUBSCRIPTION,)),
        ResourceTypeSpec("Patient", supported_profiles=(f"{US_CORE}us-core-patient",)),
        ResourceTypeSpec("RelatedPerson"),
        ResourceTypeSpec("Practitioner", supported_profiles=(f"{US_CORE}us-core-practitioner",)),
        ResourceTypeSpec(
            "PractitionerRole", supported_profiles=(f"{SDOHCC}SDOHCC-practitionerrole",)
        ),
        ResourceTypeSpec("Organization", supported_profiles=(f"{US_CORE}us-core-organization",)),
        ResourceTypeSpec(
            "HealthcareService",
            supported_profiles=(
                f"{SDOHCC}SDOHCC-HealthcareService",
                f"{SDOHCC}SDOHCC-HealthcareServiceForReferralManagement",
            ),
        ),
        ResourceTypeSpec("Location", supported_profiles=(f"{SDOHCC}SDOHCC-Location",)),
        ResourceTypeSpec("Condition", supported_profiles=(f"{SDOHCC}SDOHCC-Condition",)),
        ResourceTypeSpec("Goal", supported_profiles=(f"{SDOHCC}SDOHCC-Goal",)),
        ResourceTypeSpec(
            "Observation",
            supported_profiles=(
                f"{SDOHCC}SDOHCC-ObservationScreeningResponse",
                f"{SDOHCC}SDOHCC-ObservationAssessment",
            ),
        ),
        ResourceTypeSpec(
            "QuestionnaireResponse",
            supported_profiles=(
                "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaireresponse",
            ),
        ),
        ResourceTypeSpec(
            "DocumentReference", supported_profiles=(f"{US_CORE}us-core-documentreference",)
        ),
        ResourceTypeSpec("CareTeam", supported_profiles=(f"{US_CORE}us-core-careteam",)),
        ResourceTypeSpec("Group", supported_profiles=(f"{SDOHCC}SDOHCC-Group",)),
        ResourceTypeSpec("Provenance", writable=False),
        ResourceTypeSpec("AuditEvent", writable=False),
    )
}


def is_supported(resource_type: str) -> bool:
    return resource_type in RESOURCE_TYPES


CORE_TYPES = tuple(RESOURCE_TYPES)
"""The types a referral touches: profiled, searchable by their Gravity parameters, warmed up."""

# http://hl7.org/fhir/R4/resourcelist.html
_R4_TYPE_NAMES = """
    Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment AppointmentResponse
    AuditEvent Basic Binary BiologicallyDerivedProduct BodyStructure Bundle CapabilityStatement
    CarePlan CareTeam CatalogEntry ChargeItem ChargeItemDefinition Claim ClaimResponse
    ClinicalImpression CodeSystem Communication CommunicationRequest CompartmentDefinition
    Composition ConceptMap Condition Consent Contract Coverage CoverageEligibilityRequest
    CoverageEligibilityResponse DetectedIssue Device DeviceDefinition DeviceMetric DeviceRequest
    DeviceUseStatement DiagnosticReport DocumentManifest DocumentReference EffectEvidenceSynthesis
    Encounter Endpoint EnrollmentRequest EnrollmentResponse EpisodeOfCare EventDefinition Evidence
    EvidenceVariable ExampleScenario ExplanationOfBenefit FamilyMemberHistory Flag Goal
    GraphDefinition Group GuidanceResponse HealthcareService ImagingStudy Immunization
    ImmunizationEvaluation ImmunizationRecommendation ImplementationGuide InsurancePlan Invoice
    Library Linkage List Location Measure MeasureReport Media Medication MedicationAdministration
    MedicationDispense MedicationKnowledge MedicationRequest MedicationStatement MedicinalProduct
    MedicinalProductAuthorization MedicinalProductContraindication MedicinalProductIndication
    MedicinalProductIngredient MedicinalProductInteraction MedicinalProductManufactured
    MedicinalProductPackaged MedicinalProductPharmaceutical MedicinalProductUndesirableEffect
    MessageDefinition MessageHeader MolecularSequence NamingSystem NutritionOrder Observation
    ObservationDefinition OperationDefinition OperationOutcome Organization OrganizationAffiliation
    Parameters Patient PaymentNotice PaymentReconciliation Person PlanDefinition Practitioner
    PractitionerRole Procedure Provenance Questionnaire QuestionnaireResponse RelatedPerson
    RequestGroup ResearchDefinition ResearchElementDefinition ResearchStudy ResearchSubject
    RiskAssessment RiskEvidenceSynthesis Schedule SearchParameter ServiceRequest Slot Specimen
    SpecimenDefinition StructureDefinition StructureMap Subscription Substance
    SubstanceNucleicAcid SubstancePolymer SubstanceProtein SubstanceReferenceInformation
    SubstanceSourceMaterial SubstanceSpecification SupplyDelivery SupplyRequest Task
    TerminologyCapabilities TestReport TestScript ValueSet VerificationResult
    VisionPrescription"""
R4_TYPES = frozenset(_R4_TYPE_NAMES.split())

NOT_STORED = frozenset(
    {
        # not resources one stores: they are envelopes, answers or raw bytes
        "Bundle",
        "Parameters",
        "OperationOutcome",
        "Binary",
        # R4 types R4B removed or reshaped, which the R4B models cannot check as R4
        "EffectEvidenceSynthesis",
        "RiskEvidenceSynthesis",
        "Evidence",
        "EvidenceVariable",
        "MedicinalProduct",
        "MedicinalProductAuthorization",
        "MedicinalProductContraindication",
        "MedicinalProductIndication",
        "MedicinalProductIngredient",
        "MedicinalProductInteraction",
        "MedicinalProductManufactured",
        "MedicinalProductPackaged",
        "MedicinalProductPharmaceutical",
        "MedicinalProductUndesirableEffect",
        "SubstanceNucleicAcid",
        "SubstancePolymer",
        "SubstanceProtein",
        "SubstanceReferenceInformation",
        "SubstanceSourceMaterial",
        "SubstanceSpecification",
    }
)

RESOURCE_TYPES.update(
    (name, ResourceTypeSpec(name)) for name in sorted(R4_TYPES - NOT_STORED - set(CORE_TYPES))
)
"""Every other R4 type is stored too (read, write, history, search by the common parameters),
so referrals may point at an Encounter or a Device kept on Loopgate."""
