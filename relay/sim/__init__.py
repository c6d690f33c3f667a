"""A simulated fleet of Polycom/Poly desk phones that provisions itself (phones.md section 2)."""
