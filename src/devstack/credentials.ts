/**
 * The demo lakeFS credentials (the same pair the lakeFS quickstart documents). They guard
 * nothing but a loopback demo server; a real deployment supplies its own through
 * LAKECTL_CREDENTIALS_*.
 *
 * @module
 */

/** Demo access key id. */
export const DEMO_ACCESS_KEY_ID = "AKIAIOSFOLQUICKSTART";
/** Demo secret access key. */
export const DEMO_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
