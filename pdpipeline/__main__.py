from pdpipeline.cli import main

main()
