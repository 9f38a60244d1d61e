//! depot's integration tests: the real binary against real repositories
//! served over loopback HTTP, checked with real apt-get.

mod apt;
mod build;
mod hardening;
mod layout;
mod promote;
mod push;
mod release;
mod retention;
mod rpm;
mod serve;
mod settings;
mod support;
mod testreq;
mod train;
