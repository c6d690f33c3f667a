"""Wire models shared by the agents and the cloud."""
