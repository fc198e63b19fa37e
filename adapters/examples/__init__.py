"""Example adapters: the demo world's agencies answering from their own (sample) stores."""
