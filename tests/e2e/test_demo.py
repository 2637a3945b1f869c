"""README command 1's main job, run as `scripts/demo.py --once`: it must see
every expected allow, deny and cut."""

import os
import subprocess
import unittest

from warden_fixture import ROOT, WARDEN


class DemoTest(unittest.TestCase):

    def test_demo_once_sees_every_allow_deny_and_cut(self):
        r = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "demo.py"), "--once",
                            "--bin", os.path.dirname(WARDEN)], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("every expected allow, deny and cut was seen", r.stdout)


if __name__ == "__main__":
    unittest.main()
