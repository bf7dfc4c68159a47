from lorag.app.cli import main

main()
