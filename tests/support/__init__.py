"""Helpers shared by the tests: real hosts, browsers, published campaigns, profiles."""
