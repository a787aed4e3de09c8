"""The Istio mesh: versions and eras (facts), mesh config, injection, egress coverage, mTLS."""
