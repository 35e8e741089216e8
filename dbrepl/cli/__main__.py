from dbrepl.cli import main

main()
