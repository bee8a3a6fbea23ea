import fhir_mappings


def test_all__names_each_public_name_once_and_every_one_exists():
    assert len(set(fhir_mappings.__all__)) == len(fhir_mappings.__all__)
    for name in fhir_mappings.__all__:
        assert hasattr(fhir_mappings, name), name
    assert fhir_mappings.__doc__.startswith("Pure translations")
