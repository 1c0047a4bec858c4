// Package arch holds the test that keeps the import arrows of
// shared/ARCHITECTURE.md: lower packages never import upper ones.
package arch
