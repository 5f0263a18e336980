"""Live updates for the agents' screens: events written with the change that caused them,
relayed to every connected agent who may see them, across processes."""
