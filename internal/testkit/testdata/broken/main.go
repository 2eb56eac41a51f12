// Command broken does not compile: a package for testkit's build test.
package main

func main() { undefinedName() }
