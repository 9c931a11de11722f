"""The `fastformer` subcommands that do real work (train, generate); each
module adds its subparser with `add_parser(subparsers)`."""
