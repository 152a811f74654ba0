"""Getting a server ready: the permissions each bot account needs (one list, used by `invite` and
`/setup check`), invite links, the server diagnosis and the creation of sibling channels."""
