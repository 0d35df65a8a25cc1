from trtc.entry import run

run()
