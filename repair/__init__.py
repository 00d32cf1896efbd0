"""`python -m repair`: finds holes in the trade tape (table `trade`), fetches exactly the missing
trades from Coinbase's REST history and publishes them, unchanged, to the trades topic."""
