"""fhirtis: myositis Total Improvement Score and IVIG safety over HL7 FHIR R4."""

__version__ = "0.1.0"
