from fieldtune.cli import main

main()
