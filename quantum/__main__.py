from quantum.cli import main

main()
