"""The runtime floor: runs engines where they live (a local process pool; Ray actors
later), below the speech service and above the engines."""
