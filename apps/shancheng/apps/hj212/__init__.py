"""The HJ 212 station listener (asyncio TCP server), its store and the station simulator."""
