from pluggably.cli import main

main()
