package models

// The training tests also run on our CPU backend, registered as "cpu".
import _ "github.com/sgt-dev/sgt/backend/cpu"
