// Command probe is the smallest tool hack/build-tools.sh builds: the test of the script's
// locking (tests/integration/test_build_tools.py) races two builds of it, which costs a
// second where a real tool costs minutes.
package main

import "fmt"

func main() {
	fmt.Println("probe v1")
}
