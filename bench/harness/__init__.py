"""What every benchmark shares: servers (`servers`), Kafka backlogs and the raw round
trip (`broker`), Warroom's processes and Faust roles (`stack`), measurements and the
row line `bench.report` reads (`measure`), and the frame a module runs in (`cli`).

Imports Warroom's packages and the launchers in `warroom.servers`; nothing of Warroom's
imports this.
"""
