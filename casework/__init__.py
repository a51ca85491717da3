"""What investigators and analysts do with alerts: decisions and audit, the review site, goAML reports."""
