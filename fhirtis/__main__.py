from fhirtis.cli import main

main()
