from revierlotse.bench.runner import main

main()
