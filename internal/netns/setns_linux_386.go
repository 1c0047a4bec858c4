package netns

// The syscall package has no SYS_SETNS on 386.
const sysSetns = 346
