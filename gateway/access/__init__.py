"""Who may see and change what: SMART grants, patient compartments and organization visibility."""
