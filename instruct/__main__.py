from instruct.cli import main

main()
