"""Database plumbing: schema declaration, engines, migrations, error translation."""
