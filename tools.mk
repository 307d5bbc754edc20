# Pinned versions of the Go tools the build uses. This is the one place to bump them.
OPA_VERSION      := v1.19.1
CONFTEST_VERSION := v0.69.0
REGAL_VERSION    := v0.42.0
GHZ_VERSION      := v0.121.0
# Python clients the tests drive (pip, into the project-local venv .tools/py).
PSYCOPG_VERSION  := 3.3.9
