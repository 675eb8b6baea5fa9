from envspec.cli.main import main

main()
