//! Background jobs. Each takes only the store trait it needs, and any number
//! of processes may run it at once.
//!
//! - [`sweeper`]: deletes uploads no message kept (or confirms those one did).
//! - [`adopter`]: numbers and publishes what the Node service stores while
//!   both run side by side (MongoDB only).

pub mod adopter;
pub mod sweeper;
