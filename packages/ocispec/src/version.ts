/** The runtime-spec version this runtime implements and writes into new configs. */
export const OCI_VERSION = "1.3.0";
/** Oldest spec version whose configs this runtime reads. */
export const OCI_VERSION_MIN = "1.0.0";
/** Major version of the runtime spec that this runtime reads. */
export const SUPPORTED_OCI_MAJOR = 1;
