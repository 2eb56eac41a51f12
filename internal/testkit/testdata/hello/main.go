// Command hello prints hello: a package for testkit's build test.
package main

import "fmt"

func main() { fmt.Println("hello") }
