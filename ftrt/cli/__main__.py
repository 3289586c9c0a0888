from ftrt.cli import main

main()
