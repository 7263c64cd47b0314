//! rms-sync: the pure sync core (filled by the sync issue).
