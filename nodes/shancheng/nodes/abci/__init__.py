"""CometBFT's ABCI for the Shancheng node: the message classes (:mod:`.proto`) and the socket server (:mod:`.server`).

The message classes are generated at install time (``make proto``, :mod:`.generate`) from the ``.proto`` files of
the pinned CometBFT module; they are not committed.
"""
