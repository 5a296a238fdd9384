/** perago's version, printed by `perago --version` and sent in User-Agent headers. */
export const VERSION = "0.1.0";
