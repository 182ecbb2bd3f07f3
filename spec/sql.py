"""A source's ``query`` is one read-only statement, checked when the spec is validated.

SQL reaches files through statements (``VACUUM INTO '/x.db'``, ``ATTACH '/x.db'``, ``COPY ...
TO``, ``SELECT ... INTO``) and a few functions (``load_extension``, ``pg_read_file``), so a
query is refused unless it is a single ``SELECT``, ``WITH ... SELECT`` or ``VALUES`` without
any of them. The readers enforce the same at run time with the database's own means (SQLite:
a read-only connection and an authorizer that allows reads only; PostgreSQL: a read-only
transaction), so this check is for an early, located error rather than the only guard.
"""

from __future__ import annotations

import re

_READS = ("SELECT", "WITH", "VALUES")
_WRITES = frozenset("""
    INSERT UPDATE DELETE REPLACE UPSERT MERGE ATTACH DETACH VACUUM PRAGMA CREATE DROP ALTER REINDEX
    ANALYZE BEGIN COMMIT ROLLBACK SAVEPOINT RELEASE INTO COPY GRANT REVOKE TRUNCATE LOCK CALL DO
    EXECUTE PREPARE DEALLOCATE LISTEN NOTIFY UNLISTEN SET RESET LOAD DISCARD CLUSTER REFRESH IMPORT
    SECURITY COMMENT CHECKPOINT
""".split())
# Functions that read or write files or load code, in SQLite or PostgreSQL.
_FILE_FUNCTIONS = frozenset("""
    load_extension readfile writefile edit fts3_tokenizer pg_read_file pg_read_binary_file pg_ls_dir
    pg_stat_file lo_import lo_export lo_from_bytea dblink dblink_exec pg_file_write
""".split())

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<string>'(?:[^']|'')*(?:'|\Z))
  | (?P<quoted>"(?:[^"]|"")*(?:"|\Z)|`(?:[^`]|``)*(?:`|\Z)|\[[^\]]*(?:\]|\Z))
  | (?P<dollar>\$(?P<tag>[A-Za-z_]*)\$.*?(?:\$(?P=tag)\$|\Z))
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<semi>;)
  | (?P<other>.)
""", re.S | re.X)


def read_only_problem(query: str) -> str | None:
    """Why ``query`` is not a single read-only statement, or None when it is."""
    words: list[tuple[str, str]] = []  # (upper-case word, what follows it)
    tokens = [(m.lastgroup if m.lastgroup != "tag" else "dollar", m.group(0)) for m in _TOKEN.finditer(query)]
    tokens = [(kind, text) for kind, text in tokens if kind not in ("space", "comment")]
    for i, (kind, text) in enumerate(tokens):
        if kind == "semi":
            if any(k != "semi" for k, _ in tokens[i + 1:]):
                return "holds more than one statement; a source's query is a single SELECT"
            continue
        if kind == "word":
            following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
            words.append((text.upper(), following))
    if not words or words[0][0] not in _READS:
        first = words[0][0] if words else "nothing"
        return f"starts with {first}; a source's query is read-only: SELECT, WITH ... SELECT or VALUES"
    for word, following in words:
        if word == "REPLACE" and following == "(":
            continue  # the replace() string function
        if word in _WRITES:
            return (f"uses {word}, which writes or reaches outside the database; a source's query only reads "
                    "(quote an identifier that happens to be spelt so)")
        if word.lower() in _FILE_FUNCTIONS and following == "(":
            return f"calls {word.lower()}(), which reads or writes files or loads code; a source's query only reads"
    return None


__all__ = ["read_only_problem"]
