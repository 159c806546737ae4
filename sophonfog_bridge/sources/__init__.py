"""Where events come from: the HTTP receiver, and one client per V5/V6 box.

Each source knows its transport and nothing else; all of them hand payloads to the one
accept path (`sophonfog_bridge.accept`).
"""
