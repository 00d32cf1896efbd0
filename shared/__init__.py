"""What both services share: settings, partition map, models, logging, clients."""
