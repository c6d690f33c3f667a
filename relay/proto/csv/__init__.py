"""CSV table codec for the site and device importers (PDMS-E guide, CSV Format)."""
