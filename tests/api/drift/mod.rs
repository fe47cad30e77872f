//! Schema drift: fingerprints of real databases, the fleet's cohorts, the signals and
//! waves that skip drifted tenants.

mod fingerprint;
mod fleet;
mod replay;
