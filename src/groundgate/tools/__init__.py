"""Tools an agent may call: built-in, HTTP and MCP, behind one interface (``tools/base.py``)."""
