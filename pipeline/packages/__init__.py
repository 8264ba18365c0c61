"""Package inputs: verify, decrypt and unpack a package file before a deploy."""
