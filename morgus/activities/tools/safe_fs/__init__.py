"""Opening workspace paths on the host without following, or blocking on, anything the sandbox planted.

The workspace is written by model-run code, so every name in it is hostile: a symlink (to a host file, to `/`,
dangling, or swapped in between a check and a use), a hardlink, a FIFO whose open blocks, a socket, a device, a
10 GB sparse file, a name with a newline in it. Nothing here resolves a path string. Each component is opened
relative to its parent's descriptor with O_NOFOLLOW, so a link anywhere on the way fails the open itself (there is
no check-then-use window), and a file is first opened O_PATH (which neither blocks nor runs a device's open),
checked with fstat, and only then reopened for reading through that same descriptor, so the bytes read are those of
the inode that was checked.

`names` (how a path is split and shown), `descriptors` (opening, reading, writing one file), `tree` (listing and
publishing a folder).
"""

from morgus.activities.tools.safe_fs.descriptors import (
    PATH_DIR,
    closing_fd,
    open_dir,
    open_folder,
    open_regular,
    open_regular_at,
    open_root,
    read_capped,
    read_file,
    reopen_dir,
    sentences,
    write_file,
)
from morgus.activities.tools.safe_fs.names import COPY_CHUNK, MAX_DEPTH, TEMP_PREFIX, Missing, kind, show, split_rel
from morgus.activities.tools.safe_fs.tree import CopyReport, Entry, TooLarge, copy_regular_tree, walk

__all__ = [
    "COPY_CHUNK",
    "MAX_DEPTH",
    "PATH_DIR",
    "TEMP_PREFIX",
    "CopyReport",
    "Entry",
    "Missing",
    "TooLarge",
    "closing_fd",
    "copy_regular_tree",
    "kind",
    "open_dir",
    "open_folder",
    "open_regular",
    "open_regular_at",
    "open_root",
    "read_capped",
    "read_file",
    "reopen_dir",
    "sentences",
    "show",
    "split_rel",
    "walk",
    "write_file",
]
