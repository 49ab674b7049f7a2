"""Every test validates everything fhirtis writes with the fhir.resources R4B models (derived
resources and Provenance); the CLI runs the tests start inherit the switch."""

from fhirtis.fhir.validation import enable

enable()
