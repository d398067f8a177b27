"""What every benchmark shares: servers (`servers`), Kafka backlogs and the raw round
trip (`broker`), Warroom's processes and Faust roles (`stack`), measurements and the
row line `bench.report` reads (`measure`), and the frame a module runs in (`cli`).

Imports Warroom's packages; the launchers of `warroom.servers` only through `servers`.
Nothing of Warroom's imports this.
"""
