"""Bridges from agent frameworks to a meshtalk node: MCP server, AutoGen and LangChain tools.

Each module needs its framework (install the extra: `meshtalk[mcp]`, `meshtalk[autogen]`,
`meshtalk[langchain]`) and is imported only when used.
"""
