from aftersale.cli import main

main()
