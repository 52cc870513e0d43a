"""The built-in framework: any Kubernetes workload under DRF, its Pods held by a scheduling
gate until an offer releases them, and the admission webhook that adds the gate."""
